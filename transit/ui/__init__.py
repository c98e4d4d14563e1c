"""The web UI (issue 16): static files served at /ui/ by the application shell (shell.py).

The UI itself is static HTML, CSS and JavaScript modules under static/ (no build step); it
talks only to the public /v1 API with the user's token.
"""
