// Close-to-open consistency across the runs of one session (a master's attached runs): a run
// that starts after a local change must see it, although the agent and the kernel kept caches
// warm since the previous run. This is the one hook the FUSE layer has to honour for it.
//
// The agent calls `runStarts` when the client orders a RunStart, and reports RunReady only
// once it has resolved; the client starts the run's command only after RunReady. So the
// contract for an implementation is:
//
//   From the moment runStarts resolves, no attribute, negative entry, directory listing,
//   symlink target or file content learnt before runStarts was called may answer a
//   request without first being revalidated against the local side; this includes the
//   persistent cache's entries (revalidate them through `askStale`, which sends their probes
//   to the client and resolves with the indexes found stale, or 'all'). Open handles keep
//   what they read (close-to-open: a file open across the change may see old data).
//
// The kernel's own caches must not outlive it either: a master's session mounts with a
// negative timeout of 0 (agent-session.ts), and the attribute timeout is 0 already; the
// kernel's positive entries (1 s) are safe with a path-based layer (every open does a
// getattr by path). A layer that hands the kernel node ids and caches with timeouts above
// 0 must invalidate them here (FUSE_NOTIFY_INVAL_ENTRY / INVAL_INODE, and whatever it
// answers natively): FuseOpsByRun takes that as its `forgetKernel` argument.

/** Asks the client which persistent entries are stale; 'all' when it could not tell. */
export type AskStale = (probes: Buffer) => Promise<number[] | 'all'>;

export interface RunRevalidation {
  /** A run is about to start in this session: see the contract above. */
  runStarts(askStale: AskStale): Promise<void>;
}
