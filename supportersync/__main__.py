from supportersync.cli import main

main()
