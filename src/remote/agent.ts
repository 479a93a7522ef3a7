// The runtime's one bundle (agent.js) holds three programs: the agent, and the two halves of
// a relay (relay.ts). Each loads only its own modules: a relay, on the critical path of every
// run's start, need not initialise gRPC, protobufjs and FUSE (18 ms of its ~60 ms start).
const mode = process.argv[2];
if (mode === 'relay') void import('./relay').then((r) => r.runRelay(process.argv.slice(3)));
else if (mode === 'relay-attach') void import('./relay').then((r) => r.runRelayAttach(process.argv.slice(3)));
else void import('./agent-main').then((a) => a.runAgent());
