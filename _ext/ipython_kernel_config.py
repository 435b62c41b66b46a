# IPython kernel configuration for the book's build (copied into the build's IPYTHONDIR by
# _ext/lmmsim_book.py; part of tasks.py's code fingerprint, so changing it re-executes the chapters).
# Figures as "retina" PNGs: twice the pixels, with width/height metadata that myst-nb writes into the
# <img>, so a figure keeps its size on the page and stays sharp on high-density screens.
c = get_config()  # noqa: F821 - provided by IPython when it loads this file
c.InlineBackend.figure_formats = {"retina"}
