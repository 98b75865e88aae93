"""What chat UIs already speak: respflow events as AG-UI 1.0 events and as Vercel AI UI
message stream chunks (sans-I/O encoders, like h11's writers), and the SSE frames that
carry them to a reader, from the start or resumed after a frame id."""
