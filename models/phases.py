"""The names of the training phases: the one vocabulary the library, the worker and the API share.

A method may add a phase of its own name; whoever maps phases to something (the worker's
progress spans, the API's schema) must tolerate one it does not know.
"""
PRETRAIN = "pretrain"  # the autoencoder alone, on its reconstruction objective
INIT = "init"  # the initial clustering (k-means in the embedding, or k-means itself)
FINETUNE = "finetune"  # the clustering objective (DEC's target, DAC's pairwise labels, ...)
FINALIZE = "finalize"  # after training: the service stores the results (no library code runs)

PHASES = (PRETRAIN, INIT, FINETUNE, FINALIZE)
