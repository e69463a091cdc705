"""Reconstruct tab: upload any image, see what the model makes of it, and use its latent elsewhere."""

from __future__ import annotations

import gradio as gr

from explorer import core
from explorer.inversion import FRAMING_CHOICES, INVERT_CHOICES
from explorer.store import Store
from explorer.ui.common import UPLOAD_TYPES, Ctx, bind, file_path, friendly, with_z


def reconstruct(store: Store, run_name: str, state: dict, upload, invert: str, framing: str = "crop",
                progress=gr.Progress()):
    """The preprocessed input, its reconstruction, the error, and the session state with the upload's latent."""
    path = file_path(upload)
    if path is None:
        raise ValueError(f"upload an image first ({', '.join(t.lstrip('.').upper() for t in UPLOAD_TYPES[:8])}, …)")
    run = store.get(run_name)
    if not run.has_encoder:
        progress(0.0, desc="finding the latent by optimisation (GAN projection)")
    up = core.upload(store, run, path, invert, progress=lambda f: progress(f, desc="GAN projection"),
                     framing=framing)
    how = "encoder" if up.method == "encoder" else "projection: optimised the latent to match the image"
    metrics = (f"**MSE** {up.mse:.4f} · **PSNR** {up.psnr:.1f} dB (pixels in [0, 1]) · latent from the {how}."
               f" Input: {up.note}.")
    state = dict(state or {})
    state["upload"] = {"run": run.name, "z": up.z, "file": path}
    return core.display_pixels(up.pixels), core.display_pixels(up.recon), metrics, state


def _upload_latent(state: dict, run_name: str) -> list[float]:
    up = (state or {}).get("upload")
    if not up or up.get("run") != run_name:
        raise ValueError("reconstruct an image with this model first")
    return up["z"]


def to_explore(store: Store, run_name: str, state: dict):
    run = store.get(run_name)
    z = core.check_latent(run, _upload_latent(state, run_name))
    return core.image_uri(run, z), with_z(state, run, z, seed=None, note="the uploaded image"), \
        gr.Tabs(selected="explore")


def to_interpolate(state: dict, run_name: str):
    """Make the uploaded image one end of the interpolation (outputs: that end's source and file)."""
    _upload_latent(state, run_name)
    return "Upload", gr.update(value=state["upload"]["file"], visible=True), gr.update(visible=False), \
        gr.update(visible=False), gr.Tabs(selected="interpolate")


def build(ctx: Ctx) -> None:
    store = ctx.store
    with gr.Tab("Reconstruct", id="reconstruct"):
        with gr.Row(equal_height=False):
            with gr.Column(min_width=260):
                upload = gr.File(label="Image: any size, colour mode or format", elem_id="recon-upload",
                                 height=140)
                invert = gr.Radio(list(INVERT_CHOICES), value="auto", label="Invert colours",
                                  info="auto: invert a light-background image for a model trained on light"
                                       " strokes on dark (MNIST)", elem_id="recon-invert")
                framing = gr.Radio(list(FRAMING_CHOICES), value="crop", label="Framing",
                                   info="crop: scale and centre-crop; centre strokes: fit the strokes into the"
                                        " middle 20/28 like MNIST (for a digit photographed edge to edge)",
                                   elem_id="recon-framing")
                go = gr.Button("Reconstruct", variant="primary", elem_id="recon-btn")
            with gr.Column(min_width=200):
                seen = gr.Image(label="What the model sees (preprocessed)", format="png", interactive=False,
                                height=240, elem_id="recon-input")
            with gr.Column(min_width=200):
                recon = gr.Image(label="Reconstruction", format="png", interactive=False, height=240,
                                 elem_id="recon-output")
        metrics = gr.Markdown(elem_id="recon-metrics", label="reconstruction error")
        with gr.Row():
            to_explore_btn = gr.Button("Send latent to Explore", elem_id="recon-to-explore")
            to_a = gr.Button("Use as interpolation start (A)", elem_id="recon-to-a")
            to_b = gr.Button("Use as interpolation end (B)", elem_id="recon-to-b")
    ctx["recon_config_outputs"] = [seen, recon, metrics]
    run_dd, state = ctx["run_dd"], ctx["state"]
    outputs = [seen, recon, metrics, state]
    gr.on([go.click, upload.upload], bind(reconstruct, store), [run_dd, state, upload, invert, framing], outputs,
          api_name="reconstruct")
    to_explore_btn.click(bind(to_explore, store), [run_dd, state], [ctx["view"], state, ctx["tabs"]],
                         api_name="reconstruct_to_explore").then(
        bind(ctx["sync_fn"], store), [run_dd, state, ctx["cls"]], ctx["sync_outputs"], show_progress="hidden",
        api_visibility="private")
    for btn, end in ((to_a, ctx["interp_a"]), (to_b, ctx["interp_b"])):
        btn.click(friendly(to_interpolate), [state, run_dd],
                  [end["source"], end["upload"], end["seed"], end["sample_row"], ctx["tabs"]],
                  api_visibility="private")


def configure(store: Store, run_name: str | None) -> list:
    return [None, None, ""]
