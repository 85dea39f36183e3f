export { measure, median, percentile, type Sample, summarize } from './measure.js';
export { machineLine, renderTable, writeBenchSection } from './report.js';
export { benchVmmEnv, workspaceVmmBinary } from './vmm-env.js';
