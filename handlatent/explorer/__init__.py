"""The latent-space explorer's model, without Qt: `Session`, its parts and what they are made of.

The GUI in app/ is a view of a `Session`; scripts and tests drive the same object directly.
"""

from handlatent.explorer.atlas import Atlas, AtlasRows
from handlatent.explorer.compare import Comparison
from handlatent.explorer.decoder import Decoded, DecodeWorker, InlineWorker, NewestWorker
from handlatent.explorer.events import Events
from handlatent.explorer.figures import draw_skeleton, fit_extent, frame_with_skeleton, panel_grid
from handlatent.explorer.history import History
from handlatent.explorer.follow import RunFollower, RunMetrics, read_metrics
from handlatent.explorer.images import (MAX_PIXELS, SLOTS, ImageError, LoadedImage,
                                        prepare_image)
from handlatent.explorer.models import ModelSwitch, OpenedModel, open_model, prepare_switch
from handlatent.explorer.presets import PresetError
from handlatent.explorer.runner import ModelRunner
from handlatent.explorer.sampling import SOURCES, LatentGaussian, fit_hands
from handlatent.explorer.session import EVENTS, Session
from handlatent.explorer.slots import ImageSlots
from handlatent.explorer.stats import INACTIVE_KL, LatentStats, estimate_kl_per_dim
from handlatent.explorer.walk import ExportCancelled, Walk

__all__ = ["EVENTS", "INACTIVE_KL", "MAX_PIXELS", "SLOTS", "Atlas", "AtlasRows", "Comparison",
           "DecodeWorker", "Decoded", "Events", "ExportCancelled", "History", "ImageError",
           "ImageSlots", "InlineWorker", "LatentGaussian", "LatentStats", "LoadedImage",
           "ModelRunner", "ModelSwitch", "NewestWorker", "OpenedModel", "PresetError",
           "RunFollower", "RunMetrics", "SOURCES", "Session", "Walk", "fit_hands",
           "draw_skeleton", "estimate_kl_per_dim", "fit_extent", "frame_with_skeleton",
           "open_model", "panel_grid", "prepare_image", "prepare_switch", "read_metrics"]
