/** The OrthoGen extension of OHIF 3.13: a generation panel for the OrthoGen label app's models.
 *
 * A run-time module cannot reach the React that OHIF is compiled with, so the panel is plain DOM (our own
 * elements, in a box of ours over the viewer) and talks to OHIF only through its public services: the
 * display set service (which series the study holds and their tags), the notification service, the
 * hanging protocol service and commands (the layout that shows a result). The server side is the app's
 * `/info/` (the models, what each needs, their defaults) and `/orthogen/jobs` (a job per click, polled
 * for its stage and step; lib/generation_jobs.py).
 *
 * After a generation the page is opened again on the study with the new series named in the URL
 * (`orthogenShow`, and `hangingprotocolId` naming the layout registered from it): OHIF 3.13.2 keeps the series list of an open study (its deleteStudyMetadataPromise
 * deletes the key `StudyUID` while the cache holds `<source>:StudyUID`), so a fresh load is what lists it.
 */
import { OrthoGenPanel, RESULT_PROTOCOL } from './orthogen-panel.js';

const ID = 'orthogen';
let panel = null;

/** The layout that shows a result: the two radiographs over the CT in axial, coronal and sagittal MPR, or
 * the input radiograph beside the generated one. Series are matched by their UIDs. */
function resultProtocol(show) {
  const bySeries = uid => ({
    seriesMatchingRules: [{ attribute: 'SeriesInstanceUID', constraint: { equals: { value: uid } }, required: true }],
  });
  const stack = (viewportId, id) => ({
    viewportOptions: { viewportId, toolGroupId: 'default', viewportType: 'stack', allowUnmatchedView: true },
    displaySets: [{ id }],
  });
  const mpr = orientation => ({
    viewportOptions: {
      viewportId: `orthogen-${orientation}`, toolGroupId: 'mpr', viewportType: 'volume', orientation,
      initialImageOptions: { preset: 'middle' },
    },
    displaySets: [{ id: 'result' }],
  });
  const ct = show.kind === 'ct';
  return {
    id: RESULT_PROTOCOL,
    name: ct ? 'OrthoGen: radiographs and generated CT' : 'OrthoGen: input and generated radiograph',
    protocolMatchingRules: [],
    toolGroupIds: ['default', 'mpr'],
    displaySetSelectors: Object.fromEntries(
      [['result', show.result], ...show.inputs.map((uid, k) => [`input${k}`, uid])].map(([id, uid]) => [id, bySeries(uid)])
    ),
    stages: [
      ct
        ? {
            name: 'radiographs over MPR',
            viewportStructure: {
              layoutType: 'grid',
              properties: {
                rows: 2,
                columns: 3,
                layoutOptions: [
                  { x: 0, y: 0, width: 1 / 2, height: 1 / 2 },
                  { x: 1 / 2, y: 0, width: 1 / 2, height: 1 / 2 },
                  { x: 0, y: 1 / 2, width: 1 / 3, height: 1 / 2 },
                  { x: 1 / 3, y: 1 / 2, width: 1 / 3, height: 1 / 2 },
                  { x: 2 / 3, y: 1 / 2, width: 1 / 3, height: 1 / 2 },
                ],
              },
            },
            viewports: [stack('orthogen-ap', 'input0'), stack('orthogen-lateral', 'input1'),
              mpr('axial'), mpr('coronal'), mpr('sagittal')],
          }
        : {
            name: 'input beside result',
            viewportStructure: { layoutType: 'grid', properties: { rows: 1, columns: 2 } },
            viewports: [stack('orthogen-input', 'input0'), stack('orthogen-result', 'result')],
          },
    ],
  };
}

/** The result named in the page's URL: `orthogenShow=<series>&orthogenKind=ct|radiograph&orthogenInputs=a,b`. */
function resultInUrl() {
  const query = new URLSearchParams(window.location.search);
  const result = query.get('orthogenShow');
  if (!result) return null;
  return {
    result,
    kind: query.get('orthogenKind') === 'ct' ? 'ct' : 'radiograph',
    inputs: (query.get('orthogenInputs') || '').split(',').filter(Boolean),
    note: query.get('orthogenNote') || '',
  };
}

export default {
  id: ID,
  getHangingProtocolModule() {
    const show = resultInUrl();
    return show ? [{ name: RESULT_PROTOCOL, protocol: resultProtocol(show) }] : [];
  },
  getCommandsModule({ servicesManager }) {
    return {
      definitions: {
        orthogenOpenPanel: {
          commandFn: () => {
            panel?.close();
            panel = new OrthoGenPanel(servicesManager);
            panel.open();
            const show = resultInUrl();
            if (show) panel.showStored(show);
          },
        },
        orthogenClosePanel: {
          commandFn: () => {
            panel?.close();
            panel = null;
          },
        },
      },
      defaultContext: 'DEFAULT',
    };
  },
};
