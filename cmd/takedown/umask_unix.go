//go:build unix

package main

import "syscall"

// restrictUmask makes every file the process creates readable by its owner
// only, whatever umask the shell or service manager gave it: the data dir
// holds infected machines' addresses (databases, their -wal and -shm, the
// evidence log and packages, the API access log, backups). The few files
// meant for other users (enforcement exports read by a resolver) set their
// mode explicitly.
func restrictUmask() { syscall.Umask(0o077) }
