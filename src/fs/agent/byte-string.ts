// Paths and names as the agent holds them: "byte strings", one char per byte (latin1), so
// that a name that is not UTF-8 goes from the kernel to the local disk and back unchanged.
// Every conversion between the agent's path strings and bytes goes through these two.
export const toByteString = (b: Uint8Array | null | undefined): string =>
  b ? Buffer.from(b.buffer, b.byteOffset, b.length).toString('latin1') : '';

export const fromByteString = (s: string): Buffer => Buffer.from(s, 'latin1');
