"""The result of an evaluation: ``Report`` and how it is printed, plotted and written as HTML.

- :mod:`~medtransfer.evaluation.report.report`: ``Report`` and ``OverlaySlice``;
- :mod:`~medtransfer.evaluation.report.format`: metric labels, numbers, CIs, plain-text tables;
- :mod:`~medtransfer.evaluation.report.overlays`: the slices shown for the example cases;
- :mod:`~medtransfer.evaluation.report.plots`: box plots, curves, overlays (matplotlib, lazily);
- :mod:`~medtransfer.evaluation.report.methods`: the methods section and run details;
- :mod:`~medtransfer.evaluation.report.html_page`: the one self-contained HTML page.

``Report`` and ``OverlaySlice`` are re-exported by ``medtransfer.evaluation``.
"""
