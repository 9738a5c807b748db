"""A pretrained-start miniature of the GA-DMS paper's experiments (CPU).

Stage 0 aligns a tiny CLIP on another domain (:mod:`.shapes`), stage 1
continues pretraining on a WebPerson-style corpus built by gadms's corpus
pipeline with a simulated MLLM captioner (:mod:`.corpus`), stage 2 tests
direct transfer on three benchmark-layout test sets (:mod:`.transfer`).
The arms are in :mod:`.arms`; ``benchmarks/miniature_paper.py`` runs it.
"""
