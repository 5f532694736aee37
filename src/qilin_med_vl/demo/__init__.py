"""`qilin demo`: the whole pipeline on a synthetic medical world, through the real commands, on a CPU.

pipeline.py runs the steps in order (each one a `qilin` command), recipes.py holds the training recipes
sized for 2 cores, corpus.py derives the text-only records that stand in for a pretrained LLM,
verdict.py scores held-out answers per question type against chance and a blind model, and report.py
writes the HTML report.
"""
