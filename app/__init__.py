"""herald's HTTP side: the Flask app factory, auth, API blueprints and the CLI."""
