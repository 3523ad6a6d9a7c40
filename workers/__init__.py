"""herald's Celery side: the Celery app, the dispatch and step tasks, tool and agent runtimes."""
