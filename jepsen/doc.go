// Package jepsen is imnode's fault-injection suite. It starts real bin/imnode processes,
// each on its own loopback address, drives them black-box over HTTP with concurrent
// clients, injects faults (kill -9, SIGSTOP, nftables partitions, restarts, membership
// changes) from a seeded schedule, records every client operation as an invoke and its
// completion (ok, fail or unknown), heals every fault, and then checks the history with
// independent checkers:
//
//   - register: update_user_info / get_user_info on a few users, linearizable per uid
//     (porcupine);
//   - set: invite_user_to_group / kick_group / get_group_member_list, linearizable set
//     operations per group (porcupine);
//   - msglog: concurrent send_msg with retries that reuse the operationID; after healing
//     every acknowledged message is present exactly once on every node, nothing unsent
//     appears, seqs are 1..N, all nodes agree, and reads taken during the run agree;
//   - convergence: every node reaches the same applied index with the same state digest.
//
// An operation whose outcome is unknown (errCode 1802, a timeout) may or may not have
// happened: for porcupine it is an operation that never returns. A failed one (1801, a
// business error, a refused connection) certainly did not happen and is left out. A
// checker that times out is a failure, never a pass.
//
// Run is the entry point; cmd/imjepsen is its command line. Each run writes a report
// directory (see README.md for how to read it).
package jepsen
