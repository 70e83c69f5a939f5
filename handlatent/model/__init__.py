"""The dVAE model: latent layout, networks, objective (supplement Tables 1-3, eq. 6)."""

from handlatent.model.dvae import DVAE, ModelConfig, build_model
from handlatent.model.layout import LatentLayout
from handlatent.model.objective import DVAELoss, LossConfig, dvae_loss
from handlatent.model.resnet import load_torchvision_resnet18

__all__ = ["DVAE", "DVAELoss", "LatentLayout", "LossConfig", "ModelConfig", "build_model",
           "dvae_loss", "load_torchvision_resnet18"]
