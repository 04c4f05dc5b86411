// Fine-grained Appearance Transfer: a tooltip for every control of the img2img section.
// Keyed by elem_id (fgat_webui/args.py Control.elem_id and fgat_webui/ui.py), so it works the same in
// AUTOMATIC1111 (gradio 3) and Forge (gradio 4); the WebUI injects every javascript/*.js of an extension.
(function () {
    const fgatTooltips = {
        "fgat_enabled": "Turn on Fine-grained Appearance Transfer: the img2img image keeps its structure and takes the fine appearance (colour, texture, markings) of the target image on the matching parts.",
        "fgat_target_image": "The target image: the appearance to transfer. It is centre-cropped to the generation's aspect ratio and resized to the generation size (Width x Height).",
        "fgat_target_prompt": "A prompt describing the target image; it conditions the target's inversion and its DIFT features.",
        "fgat_mask_word": "The word of the img2img prompt naming the object whose appearance changes; its cross-attention becomes the transfer mask. Empty: the prompt's last word.",
        "fgat_mask_source": "Where the transfer mask comes from: the object word's cross-attention, the inpaint mask drawn in img2img's Inpaint tab (API: mask or mask_image), or none (the whole image).",
        "fgat_delta": "δ (Eq. 3): how far each matched position moves towards the target's appearance. 0 = no transfer, 1 = full.",
        "fgat_lam": "λ (Eq. 6): the latent balance; higher keeps more of the original latent at each window step.",
        "fgat_gamma": "γ (Eq. 7): the noise balance; higher keeps more of the original noise prediction at each window step.",
        "fgat_window_start": "First step of the transfer window, in % of the sampling steps (paper: 24%). The attention mask is collected over the steps before it.",
        "fgat_window_end": "End of the transfer window, in % of the sampling steps (paper: 44%). Later ends transfer more and change more.",
        "fgat_matching": "progressive: match the two images with DIFT features at every window step (paper); initial: match once on the clean latents (faster).",
        "fgat_inversion": "How the source is inverted: direct (exact reconstruction, no optimisation), null-text (the paper's, slow), negative-prompt (fast, approximate), ddim (fastest, drifts under CFG).",
        "fgat_dift_ensemble": "Number of noise draws averaged for the DIFT features; more is steadier and slower.",
        "fgat_diagnostics": "Also output the transfer mask over the source and the target rearranged by the semantic matching.",
        "fgat_mask_threshold": "The attention map, divided by its maximum, is kept where it is at least this value.",
        "fgat_mask_dilate": "Grow the thresholded mask by this many latent pixels (1 latent pixel = 8 image pixels).",
        "fgat_mask_layers": "full: the finest attention layers (the latent size in SD 1.x; 1/2 in SDXL); quarter: 1/4 of the latent size (paper); all: every resolution.",
        "fgat_dift_timestep": "The timestep at which DIFT features are taken (DIFT: 261).",
        "fgat_dift_prompt": "Condition the DIFT features on each image's own prompt, or on the empty prompt.",
        "fgat_gamma_on": "guided: γ mixes the guided noise predictions; uncond: γ mixes only the unconditional branch.",
        "fgat_null_text_steps": "Null-text inversion: Adam iterations per step (paper: 10).",
        "fgat_null_text_lr": "Null-text inversion: learning rate at the first step (decays linearly).",
        "fgat_null_text_epsilon": "Null-text inversion: stop a step's optimisation once its loss is below this.",
        "fgat_match_chunk": "Source positions matched per chunk; lower uses less memory for large images.",
        "fgat_target_mask": "Target-side mask (beyond the paper): restrict matches the source only to the target's object; gate drops matches that land on the target's background; none: the paper's.",
        "fgat_target_mask_word": "The word of the target prompt whose attention makes the target's mask (empty: the target prompt's last word).",
        "fgat_background_lock": "on: outside the mask the image follows the source's own inversion at every step, so the background is kept (beyond the paper).",
        "fgat_mask_threshold_mode": "fixed: keep the map above the mask threshold; otsu: a threshold chosen per image.",
        "fgat_mask_levels": "before-window: attention of the steps before the window (paper); all: of every inversion step (no extra cost).",
        "fgat_preset": "Load a preset: built-in ones (Defaults, Paper, ...) or your own, stored in the extension's presets folder.",
        "fgat_preset_refresh": "Reload the preset list.",
        "fgat_preset_name": "Name for a new preset (letters, digits, spaces, . ( ) + - _).",
        "fgat_preset_save": "Save the current FGAT settings as a preset with this name.",
        "fgat_preset_delete": "Delete the selected user preset (built-in presets cannot be deleted).",
        "fgat_preset_status": "The result of the last preset action.",
        "fgat_sampler_note": "FGAT always samples with its own deterministic DDIM path over the WebUI's steps and CFG scale.",
    };

    // the section's accordion: its tip belongs on the header, not on the whole container (where every
    // child without a tip of its own would show it)
    const headerOnly = new Set(["fgat_enabled"]);

    function applyFgatTooltips() {
        const app = typeof gradioApp === "function" ? gradioApp() : document;
        for (const [id, tip] of Object.entries(fgatTooltips)) {
            for (const elemId of [id, id + "-checkbox"]) {
                let el = app.getElementById(elemId);
                if (el && elemId === id && headerOnly.has(id)) {
                    el = el.querySelector(".label-wrap") || el;  // gradio 3 and 4 accordion headers
                }
                if (el && el.title !== tip) {
                    el.title = tip;
                }
            }
        }
    }

    if (typeof onUiLoaded === "function") {
        onUiLoaded(applyFgatTooltips);
    }
    if (typeof onUiUpdate === "function") {
        onUiUpdate(applyFgatTooltips);
    }
})();
