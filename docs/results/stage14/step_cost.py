"""CPU seconds per training step (one thread, batch 32, bf16 + channels_last): whole model vs the
decoder stage encoding each batch vs the decoder stage on cached posteriors."""
import time, torch
from handlatent.checkpoint import load_model
from handlatent.model import DVAELoss, ModelConfig, build_model
from handlatent.model.growth import grow_state
from handlatent.data.synthetic import SyntheticHandDataset
from handlatent.training.config import load_config
from handlatent.training.decoder_stage import DecoderStageLoss
torch.set_num_threads(1)
ds = SyntheticHandDataset("data/s128-dec60k")
items = [ds[i] for i in range(32)]
batch = {k: torch.stack([torch.as_tensor(it[k]) for it in items]) for k in ("image", "cpose", "viewpoint", "uv", "is_right", "mask", "labelled")}
batch["image"] = batch["image"].contiguous(memory_format=torch.channels_last)
stage13 = load_model("runs/stage13.pt", device="cpu")
whole_cfg = load_config("training/configs/synth-128-stream.yaml", ["run.init=null", "data.val=null", "data.synthetic.twins=false"])
# the wide decoder with a residual block per size and L1 + SSIM, as measured on 2026-12-08
dec_cfg = load_config("training/configs/synth-128-decoder.yaml",
                      ["run.init=null", "data.train=data/s128-test", "data.val=null",
                       "model.decoder_blocks=1", "decoder.w_ffl=0", "decoder.w_perceptual=0"])
def cost(loss_fn, params, b, n=8):
    opt = torch.optim.Adam(params, lr=1e-5, fused=True)
    ts = []
    loss_fn.train()
    for i in range(n + 3):
        t = time.process_time()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss, _ = loss_fn(b)
        opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
        if i >= 3: ts.append(time.process_time() - t)
    ts.sort(); return ts[len(ts) // 2]
m = build_model(whole_cfg.model); m.load_state_dict(stage13.state_dict()); m.to(memory_format=torch.channels_last)
print(f"whole model (stage 13, no twins): {cost(DVAELoss(m, whole_cfg.loss), m.parameters(), batch):.3f} s/step")
d = build_model(dec_cfg.model); st, _ = grow_state(d, stage13.state_dict(), 5); d.load_state_dict(st, strict=False); d.to(memory_format=torch.channels_last)
fn = DecoderStageLoss(d, dec_cfg.decoder, dec_cfg.loss.w_hand)
params = [p for p in d.parameters() if p.requires_grad]
print(f"decoder stage, encoding each batch: {cost(fn, params, batch):.3f} s/step")
with torch.no_grad():
    mu, logvar = d.encode_image(batch["image"])
print(f"decoder stage, cached posteriors: {cost(fn, params, {**batch, 'mu': mu, 'logvar': logvar}):.3f} s/step")
fn.features = __import__("handlatent.model.image_losses", fromlist=["x"]).RandomFeatures(); fn.cfg = type(dec_cfg.decoder)(**{**dec_cfg.decoder.__dict__, "w_perceptual": 0.1, "w_ffl": 1.0})
print(f"decoder stage, cached, + perceptual + FFL: {cost(fn, params, {**batch, 'mu': mu, 'logvar': logvar}):.3f} s/step")
