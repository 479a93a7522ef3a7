// The command's environment as name => value, for what the local side decides from it
// (where its libraries come from: LD_LIBRARY_PATH; what is listed ahead: PATH, HOME).
import type { ExecSpec } from './exec-spec';

export function commandEnvOf(spec: ExecSpec): Record<string, string> {
  const env: Record<string, string> = {};
  for (const raw of spec.env) {
    const e = raw.toString(); // entries may be bytes; these are only read for paths
    if (e.includes('=')) env[e.slice(0, e.indexOf('='))] ??= e.slice(e.indexOf('=') + 1);
  }
  return env;
}
