/** The OrthoGen generation panel: plain DOM over the OHIF viewer (see orthogen-extension.js for why).
 *
 * It lists the app's generation models (`GET /info/`, models with an `orthogen_kind`), offers the inputs
 * each needs from the open study's series, pre-selected from their tags (ViewPosition, PatientOrientation),
 * with the bundle's defaults for the parameters; a click submits a job (`POST /orthogen/jobs`) whose stage
 * and step are shown until the stored series opens; the server's one-line error is shown as it came. A
 * trainable model can be fine-tuned from here, that model only (`POST /train/<model>`).
 */
const XRAY_TO_CT = 'xray_to_ct';
/** The hanging protocol of a result page: orthogen-extension.js registers it from the URL when the app
 * starts; the URL's `hangingprotocolId` chooses it (OHIF looks it up before the mode enters). */
export const RESULT_PROTOCOL = 'orthogen.result';
const SEGMENTATION_TO_RADIOGRAPH = 'segmentation_to_radiograph';
const RADIOGRAPH_MODALITIES = ['DX', 'CR', 'RF', 'XA', 'OT'];
const PARAMETER_LABELS = {
  pixel_spacing: 'Pixel spacing (mm)',
  slice_thickness: 'Slice thickness (mm)',
  seed: 'Seed',
  steps: 'Steps',
  sampler: 'Sampler',
};
const PLACEHOLDERS = {
  pixel_spacing: 'mm at the detector: not in the tags, required',
  slice_thickness: 'mm of the CT to generate: required',
};
const POLL_MS = 1000;

const STYLE = `
#orthogen-panel { position: fixed; left: 292px; bottom: 12px; width: 300px; max-height: 70vh; overflow-y: auto; z-index: 2000; background: #0b1a42;
  color: #e0e6f0; border: 1px solid #3a5a9a; border-radius: 6px; font: 13px/1.4 Inter, Arial, sans-serif;
  box-shadow: 0 4px 16px rgba(0,0,0,.5); }
#orthogen-panel header { display: flex; justify-content: space-between; align-items: center; padding: 6px 10px;
  background: #16305f; border-radius: 6px 6px 0 0; font-weight: 600; }
#orthogen-panel .body { padding: 0 10px 8px; }
#orthogen-panel .outcome { padding: 4px 10px; }
#orthogen-panel .outcome:empty { display: none; }
#orthogen-panel.collapsed .body { display: none; }
#orthogen-panel label { display: block; margin-top: 6px; color: #a8b8d8; }
#orthogen-panel select, #orthogen-panel input { width: 100%; box-sizing: border-box; margin-top: 2px;
  background: #06102a; color: #e0e6f0; border: 1px solid #3a5a9a; border-radius: 3px; padding: 3px 4px; }
#orthogen-panel button { cursor: pointer; background: #2f6fd6; color: white; border: 0; border-radius: 4px;
  padding: 5px 12px; }
#orthogen-panel button.generate { width: 100%; margin-top: 10px; }
#orthogen-panel button.finetune { width: 100%; margin-top: 6px; background: #24406e; }
#orthogen-panel header { cursor: pointer; }
#orthogen-panel .help { color: #8fa3c8; font-size: 12px; margin-top: 4px; }
#orthogen-panel progress { width: 100%; margin-top: 8px; }
#orthogen-panel .status { margin-top: 4px; white-space: pre-wrap; }
#orthogen-panel .error { margin-top: 6px; color: #ff8080; white-space: pre-wrap; }
`;

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (key === 'text') node.textContent = value;
    else node.setAttribute(key, value);
  }
  children.forEach(child => node.append(child));
  return node;
}

/** Tags of a display set's first instance (OHIF's naturalized metadata). */
function firstInstance(displaySet) {
  return displaySet.instance || displaySet.instances?.[0] || {};
}

function asList(value) {
  if (value === undefined || value === null || value === '') return [];
  return Array.isArray(value) ? value : String(value).split('\\');
}

/** 'ap', 'lateral' or '' from ViewPosition (AP / PA; LL / RL / LAT) or else PatientOrientation (the row
 * direction is R / L on a frontal view, A / P on a lateral one). */
export function viewOf(displaySet) {
  const tags = firstInstance(displaySet);
  const position = String(tags.ViewPosition || '').toUpperCase();
  if (['AP', 'PA'].includes(position)) return 'ap';
  if (['LL', 'RL', 'LAT', 'LATERAL', 'RLD', 'LLD'].includes(position)) return 'lateral';
  const row = String(asList(tags.PatientOrientation)[0] || '').toUpperCase();
  if (row.startsWith('R') || row.startsWith('L')) return 'ap';
  if (row.startsWith('A') || row.startsWith('P')) return 'lateral';
  return '';
}

function spacingOf(displaySet) {
  const tags = firstInstance(displaySet);
  const spacing = asList(tags.ImagerPixelSpacing).length ? asList(tags.ImagerPixelSpacing) : asList(tags.PixelSpacing);
  const numbers = spacing.map(Number).filter(v => Number.isFinite(v) && v > 0);
  if (!numbers.length) return '';
  return numbers.length === 2 && numbers[0] !== numbers[1] ? numbers.join(', ') : String(numbers[0]);
}

function describeSeries(displaySet) {
  const tags = firstInstance(displaySet);
  const view = tags.ViewPosition ? ` ${tags.ViewPosition}` : '';
  return `${displaySet.Modality}${view} · ${displaySet.SeriesDescription || '(no description)'} · S:${displaySet.SeriesNumber ?? ''}`;
}

export class OrthoGenPanel {
  constructor(servicesManager) {
    this.services = servicesManager.services;
    this.models = {};
    this.subscriptions = [];
    this.polling = null;
  }

  open() {
    this.style = element('style', { text: STYLE });
    document.head.append(this.style);
    this.modelSelect = element('select', { 'data-cy': 'orthogen-model', id: 'orthogen-model' });
    this.fields = element('div', { class: 'fields' });
    this.button = element('button', { class: 'generate', 'data-cy': 'orthogen-generate', text: 'Generate' });
    this.finetune = element('button', { class: 'finetune', 'data-cy': 'orthogen-finetune',
      text: 'Fine-tune this model on the labelled cases', title: 'POST /train/<model>: this model only' });
    this.progress = element('progress', { max: '1', value: '0', hidden: '' });
    this.status = element('div', { class: 'status', role: 'status', 'data-cy': 'orthogen-status' });
    this.error = element('div', { class: 'error', role: 'alert', 'data-cy': 'orthogen-error' });
    const header = element('header', { title: 'Hide / show the form' },
      element('span', { text: 'OrthoGen generation' }), element('span', { class: 'collapse', text: '▾' }));
    this.root = element(
      'div', { id: 'orthogen-panel' }, header,
      element('div', { class: 'outcome' }, this.progress, this.status, this.error),
      element('div', { class: 'body' },
        element('label', { for: 'orthogen-model', text: 'Model' }), this.modelSelect,
        element('div', { class: 'help', 'data-cy': 'orthogen-model-help' }),
        this.fields, this.button, this.finetune)
    );
    document.body.append(this.root);
    header.addEventListener('click', () => this.root.classList.toggle('collapsed'));
    this.modelSelect.addEventListener('change', () => this.renderFields());
    this.button.addEventListener('click', () => this.generate());
    this.finetune.addEventListener('click', () => this.fineTune());
    const { displaySetService } = this.services;
    for (const event of [displaySetService.EVENTS.DISPLAY_SETS_ADDED, displaySetService.EVENTS.DISPLAY_SETS_CHANGED]) {
      if (event) this.subscriptions.push(displaySetService.subscribe(event, () => this.renderFields()));
    }
    this.loadModels();
  }

  close() {
    clearTimeout(this.polling);
    this.subscriptions.forEach(subscription => subscription.unsubscribe());
    this.root?.remove();
    this.style?.remove();
  }

  async loadModels() {
    try {
      const response = await fetch('/info/', { credentials: 'same-origin' });
      if (!response.ok) throw new Error(`GET /info/ answered ${response.status}`);
      const info = await response.json();
      this.models = Object.fromEntries(
        Object.entries(info.models || {}).filter(([, model]) => model.orthogen_kind)
      );
      this.trainable = new Set(Object.keys(info.trainers || {}));
    } catch (error) {
      this.showError(`The OrthoGen label app did not list its models: ${error.message}`);
      return;
    }
    this.modelSelect.replaceChildren(
      ...Object.entries(this.models).map(([name, model]) =>
        element('option', { value: name, text: `${name} (${model.orthogen_kind === XRAY_TO_CT ? 'CT from AP + lateral' : 'radiograph from segmentation'})` })
      )
    );
    const series = this.series();
    const hasSeg = series.some(d => d.Modality === 'SEG');
    const hasViews = series.filter(d => RADIOGRAPH_MODALITIES.includes(d.Modality)).length > 0;
    const preferred = Object.entries(this.models).find(([, m]) =>
      hasSeg && !hasViews ? m.orthogen_kind === SEGMENTATION_TO_RADIOGRAPH : m.orthogen_kind === XRAY_TO_CT);
    if (preferred) this.modelSelect.value = preferred[0];
    this.renderFields();
  }

  /** The open study's series (display sets) by modality. */
  series() {
    return this.services.displaySetService.getActiveDisplaySets().filter(d => d.SeriesInstanceUID);
  }

  model() {
    return this.models[this.modelSelect.value];
  }

  seriesSelect(id, label, choices, selected, allowNone) {
    const select = element('select', { id, 'data-cy': id });
    if (allowNone || !choices.length) select.append(element('option', { value: '', text: '(none)' }));
    choices.forEach(d => select.append(element('option', { value: d.SeriesInstanceUID, text: describeSeries(d) })));
    if (selected) select.value = selected.SeriesInstanceUID;
    return [element('label', { for: id, text: label }), select];
  }

  renderFields() {
    const model = this.model();
    if (!model) return;
    // what the user changed survives a re-render (new series arriving); the rest is pre-filled again
    const keep = Object.fromEntries([...this.fields.querySelectorAll('select, input')]
      .filter(e => e.dataset.changed).map(e => [e.id, e.value]));
    const series = this.series();
    const parts = [];
    const prefill = {};
    this.root.querySelector('[data-cy=orthogen-model-help]').textContent = model.description || '';
    this.finetune.hidden = !this.trainable?.has(this.modelSelect.value);
    if (model.orthogen_kind === XRAY_TO_CT) {
      const views = series.filter(d => RADIOGRAPH_MODALITIES.includes(d.Modality));
      const ap = views.find(d => viewOf(d) === 'ap') || views[0];
      const lateral = views.find(d => viewOf(d) === 'lateral' && d !== ap) || views.find(d => d !== ap);
      const apSelect = this.seriesSelect('orthogen-ap', 'AP (frontal) radiograph', views, ap, false);
      parts.push(...apSelect);
      prefill.pixel_spacing = spacingOf(views.find(d => d.SeriesInstanceUID === (keep['orthogen-ap'] || apSelect[1].value)) || {});
      const ct = series.find(d => d.Modality === 'CT' && !/synthetic/i.test(d.SeriesDescription || ''));
      const thickness = Number(firstInstance(ct || {}).SliceThickness);
      if (thickness > 0) prefill.slice_thickness = String(thickness);
      parts.push(...this.seriesSelect('orthogen-lateral', 'Lateral radiograph', views, lateral, true));
    } else {
      const segmentations = series.filter(d => d.Modality === 'SEG');
      parts.push(...this.seriesSelect('orthogen-segmentation', 'Segmentation (DICOM SEG: segments "contour" and "bone")',
        segmentations, segmentations[segmentations.length - 1], false));
    }
    const inputs = model.inputs || {};
    for (const name of Object.keys(PARAMETER_LABELS)) {
      if (!inputs[name]) continue;
      const id = `orthogen-${name}`;
      const value = prefill[name] ?? inputs[name].default ?? '';
      const field = element('input', { id, 'data-cy': id, value: String(value) });
      if (PLACEHOLDERS[name]) field.setAttribute('placeholder', PLACEHOLDERS[name]);
      parts.push(element('label', { for: id, text: PARAMETER_LABELS[name], title: inputs[name].description || '' }), field);
    }
    this.fields.replaceChildren(...parts);
    for (const node of this.fields.querySelectorAll('select, input')) {
      const value = keep[node.id];
      if (value !== undefined && [...(node.options || [{ value }])].some(o => o.value === value)) {
        node.value = value;
        node.dataset.changed = 'yes';
      }
      node.addEventListener('change', () => { node.dataset.changed = 'yes'; });
    }
  }

  value(id) {
    return this.fields.querySelector(`#${id}`)?.value?.trim() ?? '';
  }

  /** The job request of the form: model, the input series and the parameters given (blank: the default). */
  request() {
    const name = this.modelSelect.value;
    const model = this.model();
    const params = {};
    let image;
    if (model.orthogen_kind === XRAY_TO_CT) {
      image = this.value('orthogen-ap');
      params.lateral = this.value('orthogen-lateral');
    } else {
      image = this.value('orthogen-segmentation');
    }
    for (const parameter of Object.keys(PARAMETER_LABELS)) {
      const text = this.value(`orthogen-${parameter}`);
      if (!text) continue;
      if (parameter === 'sampler') params[parameter] = text;
      else if (parameter === 'pixel_spacing' && text.includes(',')) params[parameter] = text.split(',').map(Number);
      else params[parameter] = Number(text);
    }
    return { model: name, image, params };
  }

  async generate() {
    const request = this.request();
    this.error.textContent = '';
    this.status.textContent = 'Submitting…';
    this.button.disabled = true;
    try {
      const response = await fetch('/orthogen/jobs', {
        method: 'POST', credentials: 'same-origin',
        headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(request),
      });
      const job = await response.json();
      if (!response.ok) throw new Error(job.detail || `POST /orthogen/jobs answered ${response.status}`);
      this.poll(job.id, request);
    } catch (error) {
      this.finishWithError(error.message);
    }
  }

  async poll(jobId, request) {
    let job;
    try {
      const response = await fetch(`/orthogen/jobs/${encodeURIComponent(jobId)}`, { credentials: 'same-origin' });
      job = await response.json();
      if (!response.ok) throw new Error(job.detail || `GET /orthogen/jobs answered ${response.status}`);
    } catch (error) {
      this.finishWithError(error.message);
      return;
    }
    this.progress.hidden = false;
    this.progress.max = job.steps || 1;
    this.progress.value = job.steps ? job.step : 0;
    const steps = job.steps ? ` ${job.step}/${job.steps}` : '';
    this.status.textContent = `${job.model}: ${job.stage}${steps} · ${Math.round(job.seconds)} s`;
    if (job.state === 'failed') {
      this.finishWithError(job.error);
    } else if (job.state === 'done') {
      this.openResult(job, request);
    } else {
      this.polling = setTimeout(() => this.poll(jobId, request), POLL_MS);
    }
  }

  /** Fine-tune the chosen model, and only it (`POST /train/<model>`): the server refuses up front, in one
   * line, when the study's datastore holds no labelled case of it. */
  async fineTune() {
    const name = this.modelSelect.value;
    this.error.textContent = '';
    this.status.textContent = `Asking to fine-tune ${name}…`;
    try {
      const response = await fetch(`/train/${encodeURIComponent(name)}`, {
        method: 'POST', credentials: 'same-origin', headers: { 'Content-Type': 'application/json' }, body: '{}',
      });
      const answer = await response.json().catch(() => ({}));
      if (!response.ok) throw new Error(answer.detail || `POST /train/${name} answered ${response.status}`);
      this.status.textContent = `Fine-tuning ${name} started on the server (this model only)`;
    } catch (error) {
      this.finishWithError(error.message);
    }
  }

  finishWithError(message) {
    this.progress.hidden = true;
    this.button.disabled = false;
    this.status.textContent = '';
    this.showError(message);
  }

  showError(message) {
    this.error.textContent = message;
    this.services.uiNotificationService?.show({ title: 'OrthoGen', message, type: 'error', duration: 8000 });
  }

  /** Open the study again with the stored series shown beside its inputs (see orthogen-extension.js). */
  openResult(job, request) {
    const stored = job.result?.stored_series;
    if (!stored) {
      this.finishWithError(`${job.model}: the job finished without a stored series`);
      return;
    }
    const model = this.models[job.model];
    const ct = model.orthogen_kind === XRAY_TO_CT;
    let inputs = [request.image, request.params.lateral].filter(Boolean);
    if (!ct) {
      // the radiograph the SEG was drawn on; OHIF 3.13.2 at times names a UID of its own (2.25...) there
      // instead, so else the study's AP (or first) radiograph
      const series = this.series();
      const segmentation = series.find(d => d.SeriesInstanceUID === request.image);
      const referenced = firstInstance(segmentation || {}).ReferencedSeriesSequence?.[0]?.SeriesInstanceUID;
      const views = series.filter(d => RADIOGRAPH_MODALITIES.includes(d.Modality) && d.Modality !== 'OT');
      const shown = series.find(d => d.SeriesInstanceUID === referenced)
        || views.find(d => viewOf(d) === 'ap') || views[0];
      inputs = [shown ? shown.SeriesInstanceUID : request.image];
    }
    const note = stored.reused
      ? `Shown: ${stored.SeriesDescription} — stored before for the same model, inputs and parameters (not generated again)`
      : `Generated ${stored.SeriesDescription} in ${Math.round(job.seconds)} s and stored in the study`;
    const query = new URLSearchParams({
      StudyInstanceUIDs: stored.StudyInstanceUID, orthogenShow: stored.SeriesInstanceUID,
      orthogenKind: ct ? 'ct' : 'radiograph', orthogenInputs: inputs.join(','), orthogenNote: note,
      hangingprotocolId: RESULT_PROTOCOL,
    });
    window.location.assign(`${window.location.pathname}?${query}`);
  }

  /** After the page opened on a result: say what is shown. */
  showStored(show) {
    this.status.textContent = show.note || 'Generated series shown';
    this.root.classList.add('collapsed');  // the result's viewports first; the header opens the form again
  }
}
