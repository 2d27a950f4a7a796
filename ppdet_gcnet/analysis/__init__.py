"""Looking inside GC blocks: what each block attends to and how much its fusion term matters.

`context_capture` records attention maps and fusion statistics through forward hooks,
`context_report` turns them into per-block numbers, `context_plots` draws them,
`context_inputs` finds and checks the images, and `visualize` runs the whole thing per image.
"""
