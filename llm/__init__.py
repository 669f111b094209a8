"""Ask an OpenAI-compatible chat model for a surname's country: the alternative to the RNN.

client.py talks to the server, prompt.py writes the messages and reads the answer, shots.py draws
few-shot examples from the training split, cache.py keeps answers on disk, classify.py ties them
together, evaluate.py scores a list of labelled names. Imported only for --backend llm.
"""
