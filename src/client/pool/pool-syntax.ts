// Whether a -S value is a host pool (GNU parallel's --sshlogin) rather than a control socket
// path (ssh's -S): `:`, `..`, a list (a comma), or an `N/` slot count. A socket path that would
// read as one is written ./2/sock. Only Node's own modules here: the library API
// (api/run.ts) ships this file as it is.
export function looksLikePool(value: string): boolean {
  return value === ':' || value === '..' || value.includes(',') || /^[0-9]+\//.test(value);
}
