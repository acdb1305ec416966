from .cli import main

if __name__ == "__main__":  # import workers re-import the main module: run only once
    main()
