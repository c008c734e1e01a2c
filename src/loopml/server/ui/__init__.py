"""The web UI: server-rendered pages (Jinja2) over the workspace's services, with charts drawn as
SVG on the server, so it works offline and with little JavaScript. `loopml ui` serves it over an
embedded workspace; the team server serves the same pages at /ui, where a user logs in with an
API token and sees only what their roles allow (a viewer gets no buttons that change anything,
and the server refuses such requests anyway)."""
