/** OHIF 3.13.2 as the OrthoGen label app serves it at /ohif/ (apps/orthogen_label/lib/ohif_files.py).
 *
 * Studies come from our Orthanc through the app's own DICOMweb proxy (/proxy/dicom/, same origin: no
 * cross-origin request, nothing from the internet); the OrthoGen extension and mode are ES modules served
 * beside this file (/ohif/orthogen/) and loaded by OHIF's run-time `import()`.
 */
window.config = {
  name: 'orthogen',
  routerBasename: '/ohif',
  extensions: ['/ohif/orthogen/orthogen-extension.js'],
  modes: ['/ohif/orthogen/orthogen-mode.js'],
  customizationService: {},
  showStudyList: true,
  maxNumberOfWebWorkers: 2,
  showWarningMessageForCrossOrigin: false,
  showCPUFallbackMessage: false,
  showLoadingIndicator: true,
  strictZSpacingForVolumeViewport: true,
  groupEnabledModesFirst: true,
  investigationalUseDialog: { option: 'never' },
  maxNumRequests: { interaction: 20, thumbnail: 4, prefetch: 4 },
  showErrorDetails: 'always',
  defaultDataSourceName: 'orthanc',
  dataSources: [
    {
      namespace: '@ohif/extension-default.dataSourcesModule.dicomweb',
      sourceName: 'orthanc',
      configuration: {
        friendlyName: 'Orthanc (through the OrthoGen label app)',
        name: 'orthanc',
        wadoUriRoot: '/proxy/dicom/wado',
        qidoRoot: '/proxy/dicom/qido',
        wadoRoot: '/proxy/dicom/wado',
        qidoSupportsIncludeField: false,
        imageRendering: 'wadors',
        thumbnailRendering: 'wadors',
        enableStudyLazyLoad: true,
        supportsFuzzyMatching: false,
        supportsWildcard: true,
        dicomUploadEnabled: false,
        omitQuotationForMultipartRequest: true,
        bulkDataURI: { enabled: true },
      },
    },
  ],
  httpErrorHandler: error => {
    console.warn('DICOMweb request failed', error.status);
  },
};
