"""Everything people read: Block Kit and text rendering, action ids and outbox keys. Pure; imports only domain."""
