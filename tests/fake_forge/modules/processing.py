"""Forge's modules/processing.py: A1111 1.10.1's (the fake A1111's file, run in this module's namespace)
with Forge's changes for img2img:

- `process_images_inner` (Forge l.852-1156): the whole generation runs under **`torch.inference_mode()`**
  (l.911), not `torch.no_grad()`; no ldm `ema_scope` and no `model_hijack`; before each batch iteration
  `p.sd_model.forge_objects` is reset to a shallow copy of `forge_objects_original` (l.937) and, after the
  extra networks, of `forge_objects_after_applying_lora` (l.957);
- `StableDiffusionProcessingImg2Img.sample` (Forge l.1842-1880): `forge_objects` is reset again right before
  `process_before_every_sampling` (l.1851), so UNet patches belong on a clone made there; `p.modified_noise`
  replaces the noise when a script sets it (l.1861-1863);
- `StableDiffusionProcessing.modified_noise` (l.253)."""
from pathlib import Path

_A1111 = Path(__file__).resolve().parents[2] / "fake_webui" / "modules" / "processing.py"
exec(compile(_A1111.read_text(encoding="utf-8"), str(_A1111), "exec"))

StableDiffusionProcessing.modified_noise = None  # noqa: F821  (l.253)


def process_images_inner(p):  # Forge l.852-1156
    devices.torch_gc()  # noqa: F821
    seed = get_fixed_seed(p.seed)  # noqa: F821
    subseed = get_fixed_seed(p.subseed)  # noqa: F821
    p.sd_model_name = shared.sd_model.sd_checkpoint_info.name_for_extra  # noqa: F821
    p.sd_model_hash = shared.sd_model.sd_model_hash  # noqa: F821
    p.sd_model.comments = []
    p.sd_model.extra_generation_params = {}
    p.fill_fields_from_opts()
    p.setup_prompts()
    p.all_seeds = [int(seed) + (x if p.subseed_strength == 0 else 0) for x in range(len(p.all_prompts))]
    p.all_subseeds = [int(subseed) + x for x in range(len(p.all_prompts))]

    if p.scripts is not None:
        p.scripts.process(p)

    infotexts = []
    output_images = []
    with torch.inference_mode():  # noqa: F821  (l.911)
        with devices.autocast():  # noqa: F821
            p.init(p.all_prompts, p.all_seeds, p.all_subseeds)
        if state.job_count == -1:  # noqa: F821
            state.job_count = p.n_iter  # noqa: F821
        for n in range(p.n_iter):
            p.iteration = n
            if state.skipped:  # noqa: F821
                state.skipped = False  # noqa: F821
            if state.interrupted or state.stopping_generation:  # noqa: F821
                break
            sd_models.forge_model_reload()  # noqa: F821
            p.sd_model.forge_objects = p.sd_model.forge_objects_original.shallow_copy()  # l.937
            p.prompts = p.all_prompts[n * p.batch_size:(n + 1) * p.batch_size]
            p.negative_prompts = p.all_negative_prompts[n * p.batch_size:(n + 1) * p.batch_size]
            p.seeds = p.all_seeds[n * p.batch_size:(n + 1) * p.batch_size]
            p.subseeds = p.all_subseeds[n * p.batch_size:(n + 1) * p.batch_size]
            latent_channels = shared.sd_model.forge_objects.vae.latent_channels  # noqa: F821
            p.rng = rng.ImageRNG((latent_channels, p.height // opt_f, p.width // opt_f), p.seeds,  # noqa: F821
                                 subseeds=p.subseeds, subseed_strength=p.subseed_strength,
                                 seed_resize_from_h=p.seed_resize_from_h, seed_resize_from_w=p.seed_resize_from_w)
            if p.scripts is not None:
                p.scripts.before_process_batch(p, batch_number=n, prompts=p.prompts, seeds=p.seeds,
                                               subseeds=p.subseeds)
            if len(p.prompts) == 0:
                break
            p.parse_extra_network_prompts()
            if not p.disable_extra_networks:
                extra_networks.activate(p, p.extra_network_data)  # noqa: F821
            p.sd_model.forge_objects = p.sd_model.forge_objects_after_applying_lora.shallow_copy()  # l.957
            if p.scripts is not None:
                p.scripts.process_batch(p, batch_number=n, prompts=p.prompts, seeds=p.seeds, subseeds=p.subseeds)
            p.setup_conds()
            p.extra_generation_params.update(p.sd_model.extra_generation_params)
            if n == 0:
                with open(os.path.join(paths.data_path, "params.txt"), "w", encoding="utf8") as file:  # noqa: F821
                    file.write(create_infotext(p, p.prompts, p.seeds, p.subseeds, index=0,  # noqa: F821
                                               all_negative_prompts=p.negative_prompts))
            for comment in p.sd_model.comments:
                p.comment(comment)
            sd_models.apply_alpha_schedule_override(p.sd_model, p)  # noqa: F821
            samples_ddim = p.sample(conditioning=p.c, unconditional_conditioning=p.uc, seeds=p.seeds,
                                    subseeds=p.subseeds, subseed_strength=p.subseed_strength, prompts=p.prompts)
            if p.scripts is not None:
                ps = scripts.PostSampleArgs(samples_ddim)  # noqa: F821
                p.scripts.post_sample(p, ps)
                samples_ddim = ps.samples
            x_samples_ddim = decode_latent_batch(p.sd_model, samples_ddim, target_device=devices.cpu,  # noqa: F821
                                                 check_for_nans=True)
            x_samples_ddim = torch.stack(x_samples_ddim).float()  # noqa: F821
            x_samples_ddim = torch.clamp((x_samples_ddim + 1.0) / 2.0, min=0.0, max=1.0)  # noqa: F821
            del samples_ddim
            state.nextjob()  # noqa: F821
            if p.scripts is not None:
                p.scripts.postprocess_batch(p, x_samples_ddim, batch_number=n)
                p.prompts = p.all_prompts[n * p.batch_size:(n + 1) * p.batch_size]
                p.negative_prompts = p.all_negative_prompts[n * p.batch_size:(n + 1) * p.batch_size]
                batch_params = scripts.PostprocessBatchListArgs(list(x_samples_ddim))  # noqa: F821
                p.scripts.postprocess_batch_list(p, batch_params, batch_number=n)
                x_samples_ddim = batch_params.images

            def infotext(index=0, use_main_prompt=False):
                return create_infotext(p, p.prompts, p.seeds, p.subseeds, use_main_prompt=use_main_prompt,  # noqa: F821
                                       index=index, all_negative_prompts=p.negative_prompts)

            for i, x_sample in enumerate(x_samples_ddim):
                p.batch_index = i
                x_sample = 255.0 * np.moveaxis(x_sample.cpu().numpy(), 0, 2)  # noqa: F821
                image = Image.fromarray(x_sample.astype(np.uint8))  # noqa: F821
                if p.scripts is not None:
                    pp = scripts.PostprocessImageArgs(image)  # noqa: F821
                    p.scripts.postprocess_image(p, pp)
                    image = pp.image
                image = inpaint_overlay(p, i, image)  # noqa: F821  (Forge l.1058-1082)
                text = infotext(i)
                infotexts.append(text)
                if opts.enable_pnginfo:  # noqa: F821
                    image.info["parameters"] = text
                output_images.append(image)

    if not infotexts:
        infotexts.append(create_infotext(p, p.all_prompts, p.all_seeds, p.all_subseeds, index=0))  # noqa: F821
    res = Processed(p, images_list=output_images, seed=p.all_seeds[0], info=infotexts[0],  # noqa: F821
                    subseed=p.all_subseeds[0], infotexts=infotexts)
    if p.scripts is not None:
        p.scripts.postprocess(p, res)
    return res


def _forge_img2img_sample(self, conditioning, unconditional_conditioning, seeds, subseeds, subseed_strength,
                          prompts):  # Forge l.1842-1880
    x = self.rng.next()
    if self.initial_noise_multiplier != 1.0:
        self.extra_generation_params["Noise multiplier"] = self.initial_noise_multiplier
        x *= self.initial_noise_multiplier
    self.sd_model.forge_objects = self.sd_model.forge_objects_after_applying_lora.shallow_copy()  # l.1851
    if self.scripts is not None:
        self.scripts.process_before_every_sampling(p=self, x=self.init_latent, noise=x, c=conditioning,
                                                   uc=unconditional_conditioning)
    if self.modified_noise is not None:  # l.1861-1863
        x = self.modified_noise
        self.modified_noise = None
    samples = self.sampler.sample_img2img(self, self.init_latent, x, conditioning, unconditional_conditioning,
                                          image_conditioning=self.image_conditioning)
    if self.mask is not None:
        blended_samples = samples * self.nmask + self.init_latent * self.mask
        if self.scripts is not None:
            mba = scripts.MaskBlendArgs(samples, self.nmask, self.init_latent, self.mask, blended_samples)  # noqa: F821
            self.scripts.on_mask_blend(self, mba)
            blended_samples = mba.blended_latent
        samples = blended_samples
    del x
    devices.torch_gc()  # noqa: F821
    return samples


StableDiffusionProcessingImg2Img.sample = _forge_img2img_sample  # noqa: F821
