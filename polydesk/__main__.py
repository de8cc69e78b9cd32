from polydesk.cli.main import main

main()
