"""FAKE pyrep.objects: scene objects looked up by name in the FAKE CoppeliaSim scene."""
