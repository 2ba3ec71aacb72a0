/** The OrthoGen mode of OHIF 3.13: OHIF's own segmentation mode (its viewports, tools and segmentation
 * panel, so a user can draw "contour" and "bone" segments and save them as DICOM SEG) plus the OrthoGen
 * generation panel (orthogen-extension.js). Valid for studies that hold radiographs (DX / CR) and/or a CT.
 *
 * Built at run time from the segmentation mode OHIF ships (`loadModules(['@ohif/mode-segmentation'])`):
 * nothing of OHIF is copied or compiled in, so the mode follows the viewer it runs in.
 */
const ID = 'orthogen';
const MODALITIES = ['DX', 'CR', 'CT'];

function isValidMode({ modalities }) {
  const present = (modalities || '').split('\\');
  const valid = MODALITIES.some(modality => present.includes(modality));
  return {
    valid,
    description: valid
      ? 'Studies with radiographs (DX / CR) or a CT'
      : `OrthoGen needs a radiograph (DX / CR) or a CT; this study has ${present.join(', ') || 'none'}`,
  };
}

async function modeFactory({ loadModules }) {
  const [segmentation] = await loadModules(['@ohif/mode-segmentation']);
  const base = segmentation.modeInstance;
  const route = base.routes[0];
  return {
    ...base,
    id: ID,
    routeName: ID,
    displayName: 'OrthoGen',
    hide: false,
    isValidMode,
    nonModeModalities: undefined,
    // the OrthoGen extension is registered from app-config.js (by URL); a mode's `extensions` are re-imported by name
    routes: [{ ...route, path: ID }],
    onModeEnter(context) {
      base.onModeEnter.call(this, context);
      context.commandsManager.runCommand('orthogenOpenPanel');
    },
    onModeExit(context) {
      context.commandsManager.runCommand('orthogenClosePanel');
      base.onModeExit.call(this, context);
    },
  };
}

export default { id: ID, modeFactory };
