"""Pictures: feature maps, sparsity by depth, class activation maps, detections, and the HTML
report. Each draws numbers computed elsewhere (`ninlab.analysis`, `ninlab.claims`,
`ninlab.locate`, `ninlab.runs`); the `ninlab features`, `sparsity`, `cam`, `locate` and `report`
verbs are thin layers over these.
"""

from ninlab.viz.cam import cam_figure, cam_panels, plot_cam
from ninlab.viz.features import channel_grid, plot_features
from ninlab.viz.locate import locate_figure, plot_locate
from ninlab.viz.report import Report, build_report
from ninlab.viz.sparsity import plot_sparsity, sparsity_figure

__all__ = [
    "Report",
    "build_report",
    "cam_figure",
    "cam_panels",
    "channel_grid",
    "locate_figure",
    "plot_cam",
    "plot_features",
    "plot_locate",
    "plot_sparsity",
    "sparsity_figure",
]
