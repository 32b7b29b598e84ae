"""ROS glue shared by the nodes: QoS from the contract, message conversions, node process entry."""
