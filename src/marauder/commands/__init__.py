"""One module per `marauder` subcommand: HELP, add_arguments(parser), run(args, ctx) -> int."""
