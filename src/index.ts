// outrun as a library: the package's main export (see README, "As a library").
export { run, OutrunRunError, type RunOptions, type RunResult, type RunHandle, type StdioOption } from './client/api/run';
