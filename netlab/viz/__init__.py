"""Seeing a trace: terminal text, diagrams (DOT, SVG, Mermaid), an HTML stepper, pcap.

Presentation only: every module here turns a Trace (and, for pictures, the World it
ran on) into text or bytes; the CLI decides where they go. Heavy libraries (rich,
graphviz, scapy) are imported inside the functions that need them.
"""
