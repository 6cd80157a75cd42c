from jeeves_runner.cli import main

main()
