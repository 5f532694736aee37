"""A procedurally rendered medical world for offline demos: `qilin data synth`.

world.py decides the ground truth from one seed, render.py draws the pictures, english.py and chinese.py
hold the phrase books that texts.py composes, write.py writes the public source formats and
generate.py runs it all. No torch: it runs wherever the data tools do.
"""
