"""The team server's REST API, declared once: `operations.OPERATIONS` holds one entry per
remote operation (the port method, its HTTP verb and path, the role it needs and how its
project is found, its audit entity kind); the bodies and answers are made from the port
method's signature. The server's routes (`loopml.server.routes`) and the remote stores
(`loopml.adapters.remote`) are both made from that table, so the two cannot disagree."""
