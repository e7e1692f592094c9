"""The command-line front ends (argparse) and the engine options they share with
the absl scripts."""
