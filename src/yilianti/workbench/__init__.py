"""The workbench (工作台): the work waiting for the acting user, as counts linking to the filtered lists."""
