"""The operator dashboard (`lamp-ros dashboard`, or dashboard:=true in a graph): a web page on the robot computer.

    access.py    who may do what: loopback needs no token, any other address a token (e-stop engage: never)
    history.py   episodes so far and the newest camera frames as JPEG (ROS-free)
    server.py    aiohttp: the static page, one WebSocket per page, HTTP e-stop
    static/      the page (HTML, CSS, JS; no build step)

The ROS side is the dashboard node (lamp_ros/nodes/dashboard.py)."""
