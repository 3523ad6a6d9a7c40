"""Templates in task ``with`` values and workflow ``outputs``: Go-style paths, Jinja underneath.

A template reads the execution's data with Go-style leading-dot paths::

    "Validate order {{ .input.orderId }}"         # text around: renders a string
    "{{ .input }}"                                # the whole value: keeps its JSON type
    "{{ .tasks.check-inventory.output.ok }}"      # task ids may contain dashes
    "{{ .input.name | upper }}"                   # Jinja filters and expressions work

The context has ``input`` (the event payload), ``tasks`` (``{id: {"output",
"status", "error"}}``), ``error`` (what led into an ``on_error`` target), ``event``,
``workflow`` and ``execution``. A missing key is a :class:`TemplateError` naming the
template and the key, never an empty string (``| default(...)`` and ``is defined``
still work). A string that is one ``{{ }}`` with at most whitespace around it is a
whole value; anything else renders a string, with objects, numbers, booleans and
null embedded as JSON text (``true``, ``null``, ``{"a": 1}``).

Paths are translated as :mod:`workflows.templates.paths` describes; every segment is
a key (``.input.items`` is the key ``items``). Variables of Jinja's own (a loop's
``item.sku``) use Jinja lookup, where ``item["items"]`` reaches a key that shares a
``dict`` method's name. Rendering (:mod:`workflows.templates.rendering`) is sandboxed
(:mod:`workflows.templates.sandbox`) and bounded (:mod:`workflows.templates.limits`).
"""

from workflows.templates.rendering import check_syntax, references, render

__all__ = ["check_syntax", "references", "render"]
