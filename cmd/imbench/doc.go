// Command imbench is the load generator of imnode. It creates a fixture (users, a
// friendship per single-chat conversation, groups of 10, 100 and 1,000 members) once,
// then drives manager/send_msg (single and group), user/get_user_info, msg/pull_msg_by_seq
// or a weighted mix at a fixed concurrency for a bounded duration or count, spread over
// all the nodes it is given. It prints progress while it runs, then throughput, latency
// percentiles (p50/p95/p99/max of successful operations, from a log-bucketed histogram)
// and errors by errCode, and writes the same as JSON.
//
// Usage:
//
//	imbench -nodes 127.0.0.1:10002,127.0.0.1:10012,127.0.0.1:10022 \
//	        -workload send_single,send_group,read_user -c 1,16,64 -d 10s -json bench.json
//
// The workers run a closed loop: each sends its next request when the previous one is
// answered, to the next node in turn. Request bodies are built by appending to a reused
// buffer, and only the envelope's errCode is parsed, so the generator costs little of
// the CPU it shares with the nodes. See README.md for every flag and the figures.
package main
