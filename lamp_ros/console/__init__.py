"""The operator console (`lamp-ros console`): a terminal UI over the running graph's topics and services.

    board.py     what the console knows: latest statuses, message rates, the event log (ROS-free)
    view.py      that knowledge as screen lines (ROS-free, so it is tested without a terminal)
    commands.py  the input line: an instruction, or a /command
    link.py      the ROS side: publishers, service calls, subscriptions feeding the board
    app.py       the prompt_toolkit screen and keys; `main(argv)`
"""
