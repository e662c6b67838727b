"""`ninlab explore`: a live page to look inside a trained run, served on this machine.

explorer.py  Explorer: the run loaded once, pictures computed once, each view's answer as data
app.py       the Starlette app: the page's files and a JSON API over an Explorer
server.py    serve: bind, load, run uvicorn until Ctrl-C, remove the uploads
static/      the page itself (HTML, CSS, JavaScript), served from the package: no CDN
"""

from ninlab.explore.explorer import Explorer, Picture
from ninlab.explore.server import DEFAULT_PORT, explorer_for, serve

__all__ = ["DEFAULT_PORT", "Explorer", "Picture", "explorer_for", "serve"]
