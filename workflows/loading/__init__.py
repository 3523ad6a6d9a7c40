"""Loading a project: from a directory of YAML files to a checked, typed ``Project``.

:func:`workflows.loading.loader.load_project` runs the steps, each in its module:

- :mod:`~workflows.loading.discovery`: which files of the directory are workflow files;
- :mod:`~workflows.loading.yamlsource`: YAML documents that remember each value's line;
- :mod:`~workflows.loading.references`: ``$ref`` and ``$use`` resolved;
- :mod:`~workflows.loading.validation`: the structure checked against the shipped JSON Schemas;
- :mod:`~workflows.loading.parts_builder`: the shared parts built (models, tools, agents,
  defaults);
- :mod:`~workflows.loading.workflow_builder`: each workflow built and its meaning checked.

Every problem is collected with its file and line; one error and nothing loads.
"""
