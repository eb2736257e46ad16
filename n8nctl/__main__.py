from n8nctl.cli.main import main

main()
