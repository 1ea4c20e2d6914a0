"""The asyncio adapters: the only code that touches the event loop or the network."""
