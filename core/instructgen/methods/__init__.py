"""Generation methods built into the core, and the context the core hands every method.

``context.DispatchContext`` implements ``instructgen.MethodContext`` on the dispatcher;
``selfinstruct.SelfInstructMethod`` is Self-Instruct (Wang et al., 2022) as a method. Document
Q/A is the directory pipeline, whose executors are wired in ``runs.py``, so its method class is
defined and registered there. Modules here import nothing from each other's package
``__init__``: import them by their full name.
"""
