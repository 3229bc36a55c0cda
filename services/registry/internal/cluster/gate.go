package cluster

// SendWindowOpen reports whether some lease of this replica may still be valid by its
// own clock: false once every lease it was ever given has run out. The engine checks
// each trunk's lease right before it hands a REGISTER to the Requester's client; this
// is the backstop after that check, for the bytes themselves: a replica paused (SIGSTOP,
// a long GC) between the check and the write finds, when it resumes, its leases run out
// and the write refused (upstream.WithWriteGate), so a REGISTER built before the pause
// never leaves after another replica took the trunks over.
func (c *Cluster) SendWindowOpen() bool {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	return now.Before(c.validMax)
}
