// Package agent implements the protocol between the host and ksu-agent, the
// process that runs commands inside a test guest.
//
// The agent reads requests from a virtio-serial port
// (/dev/virtio-ports/org.ksu.agent in the guest, a unix socket on the host)
// and writes one response per request. Both the host side (Client) and the
// guest side (Server) live here, so the wire format is defined once.
//
// # Framing
//
// Every message is one JSON object on its own line. Each writer sends a
// newline before the object as well as after it:
//
//	\n{"id":7,"op":"run","session":"9c2f…","argv":["uname","-r"],"timeout_ms":30000}\n
//
// Readers skip empty lines, lines that are not valid JSON and lines longer
// than MaxLine. The leading newline matters after a kexec: the old kernel may
// have been stopped halfway through a message, and the newline ends that
// fragment as a line of its own, so the next message still parses.
//
// # Requests
//
//	op     fields used                        response
//	ping   none                               info
//	run    session argv env dir stdin timeout  exit_code signal stdout stderr truncated
//	spawn  session argv env dir log           pid log
//
// "run" waits for the command and returns its output, at most MaxOutput
// bytes of each stream; "truncated" reports that more was discarded. The
// agent kills the command's process group when timeout_ms passes. "spawn"
// starts a command in its own session with stdin from /dev/null and output
// appended to a guest file, then returns at once. Byte fields (stdin, stdout,
// stderr) are base64 strings, the standard JSON encoding of []byte.
//
// # Sessions and ids
//
// Every agent process picks a random session id at start and reports it in
// the ping response. "run" and "spawn" must name that session, otherwise the
// agent rejects them with code "session" and its current Info, without
// running anything. This keeps a new agent (after a restart or a kexec) from
// running requests that were queued for the previous one and that the host
// has given up on. The host matches responses to requests by id and ignores
// responses whose id it no longer waits for.
//
// # Errors
//
// A failed request gets a response with "error": {"code": …, "message": …}.
// Codes are the Code* constants. A "run" that timed out still carries the
// output read so far.
package agent
